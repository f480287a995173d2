# ser_robot: `make demo` (the main job) and `make test` (what CI runs) set everything up first.
SHELL := /bin/bash
ENV := source ./setup.bash &&
PYTEST_ARGS ?=

.PHONY: setup demo model test bench clean

setup:            ## system packages, .venv, ser_robot_msgs, ser-robot command (idempotent)
	./scripts/setup.sh

demo: setup       ## held-out synthetic speech -> virtual ears -> microphone -> features -> inference -> bag -> metrics
	$(ENV) ser-robot demo

model: setup      ## retrain the shipped default model (models/default: model.pt, MODEL_CARD.md); ~1 h on 2 CPU cores
	$(ENV) ser-robot build-model training/default_model.yaml --out models/default --workers 2

test: setup       ## the whole test suite (unit and ROS integration over real DDS)
	$(ENV) python -m pytest test $(PYTEST_ARGS)

bench: setup      ## benchmarks (ratios against a reference measured in the same run)
	$(ENV) python -m pip install -q -r requirements/bench.txt -c requirements/base.txt -c requirements/torch.txt
	$(ENV) python bench/microphone_bench.py --out out/bench
	$(ENV) test -f out/synth/manifest.jsonl || ser-robot synth-corpus --out out/synth --speakers 10 --sentences 100
	$(ENV) python bench/egemaps_bench.py --manifest out/synth/manifest.jsonl --out out/bench
	$(ENV) python bench/logmel_bench.py --out out/bench
	$(ENV) python bench/augment_bench.py --out out/bench
	$(ENV) python bench/train_bench.py --out out/bench
	$(ENV) python bench/model_forward_bench.py --out out/bench
	$(ENV) python bench/segment_cost_bench.py --out out/bench
	$(ENV) python bench/attack_bench.py --out out/bench
	$(ENV) python bench/epoch_breakdown.py --out out/bench/epoch_breakdown
	$(ENV) python bench/pipeline_realtime_bench.py --out out/bench
	$(ENV) python bench/pipeline_streams_bench.py --out out/bench
	$(ENV) python bench/pipeline_dds_bench.py --out out/bench
	$(ENV) python bench/pipeline_realtime_bench.py --out out/bench/low_cpu --chunk-ms 20 --vad-block-windows 3 --modes window,utterance

clean:
	rm -rf build out .pytest_cache
