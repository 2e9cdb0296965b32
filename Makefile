# Shortcuts. `make test` is the README's test command; `make bench` runs every
# benchmark one after another and keeps what each printed under bench-results/.
# Run benchmarks on a machine doing nothing else: they measure side by side,
# but two cores shared with other work still move every figure.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PY ?= .venv/bin/python
STAMP := $(shell date -u +%Y-%m-%dT%H%MZ)
OUT ?= bench-results/$(STAMP)
RUN = @mkdir -p $(OUT) && echo "== $@" && $(PY)

.PHONY: test bench bench-peers bench-scheduling bench-load bench-parts bench-learning venv

test:
	.ci/run

venv:
	@test -x $(PY) || python3 -m venv .venv
	@$(PY) -m pip install -q -e '.[test,bench]'

# All of them: about 20 minutes on 2 cores.
bench: bench-peers bench-scheduling bench-load bench-parts bench-learning
	@echo "results in $(OUT)"

# moc against direct calls, a bare proxy and LiteLLM's proxy (builds LiteLLM's
# own virtual environment in .bench/ the first time; needs PyPI once).
bench-peers: venv
	$(RUN) benchmarks/gateway_overhead.py --seconds 5 --litellm --llama | tee $(OUT)/gateway_overhead.md

# Scheduling quality: simulated traces against the baselines, then a short
# trace replayed for real to check the simulator.
bench-scheduling: venv
	$(RUN) -m benchmarks.schedsim.run | tee $(OUT)/schedsim.md
	$(RUN) -m benchmarks.schedsim.replay_real | tee $(OUT)/schedsim_replay.md

# The seed's load test, and ten times capacity for a minute.
bench-load: venv
	$(RUN) benchmarks/seed_load.py | tee $(OUT)/seed_load.md
	$(RUN) benchmarks/overload.py | tee $(OUT)/overload.md

# The parts: lease operations, cold loads, eviction decisions, HTTP choices,
# artifact verification, authentication and TLS.
bench-parts: venv
	$(RUN) benchmarks/lease_ops.py | tee $(OUT)/lease_ops.md
	$(RUN) benchmarks/model_load.py --rounds 20 | tee $(OUT)/model_load.md
	$(RUN) benchmarks/eviction_policy.py | tee $(OUT)/eviction_policy.md
	$(RUN) benchmarks/upstream_client.py | tee $(OUT)/upstream_client.md
	$(RUN) benchmarks/http_stack.py | tee $(OUT)/http_stack.md
	$(RUN) benchmarks/artifact_verify.py | tee $(OUT)/artifact_verify.md
	$(RUN) benchmarks/auth_overhead.py | tee $(OUT)/auth_overhead.md
	$(RUN) benchmarks/tls_overhead.py | tee $(OUT)/tls_overhead.md

# Learning jobs: throughput under moc, time to yield, quantize and index
# (needs moc[learning]: torch's CPU build, transformers, peft, MiniLM).
bench-learning: venv
	@$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install -q 'torch==2.13.0+cpu'
	@$(PY) -m pip install -q -e '.[learning]'
	$(RUN) -m benchmarks.learning --out $(OUT)/learning.json | tee $(OUT)/learning.md
