# saltant-fleet: provision Celery worker fleets for saltant with Ansible.
#
#   make demo       bring up a local fleet (a broker host and three workers
#                   with different queues and runtimes, one with two
#                   instances), provision it with site.yml, publish a few
#                   jobs to each queue and print where each ran, its states
#                   and its S3 log keys
#   make demo-job   publish those jobs again
#   make demo-status  the fleet status table (playbooks/status.yml)
#   make demo-down  remove the demo fleet
#   make test       everything CI checks; ends with "N passed, N failed"
#   make lint       yamllint, ansible-lint (production profile), ruff, and the
#                   role READMEs' variable tables against meta/argument_specs.yml
#   make docs       regenerate those tables (tools/role_docs.py)
#   make unit       unit tests (pytest): worker_src's, and the test bed's and
#                   tools' (status API stand-in, preflight cases, log shipper
#                   against a real S3 API, recap parser)
#   make images     build the test bed's images: the systemd base images and
#                   the broker host's (rebuilt only when their recipes change)
#   make bench      benchmarks: site.yml on 1, 2 and 4 hosts against a no-op
#                   playbook (bench/results/converge.md, also make
#                   bench-converge); log shipping of many jobs
#                   (log-shipping.md) and of a log growing to 100 MiB over
#                   10 min (growing-log.md)
#
# Both demo and test install what they need: a virtualenv for the control
# node (.venv, from requirements.txt), the collections of requirements.yml,
# a Docker engine (started when none answers) and the base images.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# pip from PyPI trusts only its own bundle; use the system store, which
# holds the CAs of a TLS-intercepting proxy if the machine has one.
export PIP_CERT ?= /etc/ssl/certs/ca-certificates.crt

IMAGES ?= 11 12 13

.PHONY: all venv collections docker images lint docs unit test bench bench-converge demo demo-job demo-status demo-down clean

all: test

# A link to a virtualenv cached outside the clone, one per requirement set
# (testbed/bin/ensure-venv), so that a fresh clone does not install again.
$(VENV)/.installed: requirements.txt worker_src/requirements/requirements-worker-python3.txt testbed/bin/ensure-venv
	@PYTHON=$(PYTHON) testbed/bin/ensure-venv $(VENV) requirements.txt
	@touch $@

venv: $(VENV)/.installed

collections: venv
	@$(BIN)/python testbed/bin/ensure-collections requirements.yml

docker:
	@testbed/bin/ensure-docker

images: venv collections docker
	@# Ansible reaches the test hosts with the ssh client (.config/molecule/config.yml).
	@command -v ssh >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q openssh-client; }
	@testbed/bin/build-images $(IMAGES)
	@testbed/bin/build-broker-image

lint: venv collections
	@$(BIN)/python tests/run.py --only lint

docs: venv
	@$(BIN)/python tools/role_docs.py

unit: venv
	@$(BIN)/python tests/run.py --only unit

test: images
	@$(BIN)/python tests/run.py

bench: venv bench-converge
	@$(BIN)/python bench/log_shipping.py
	@$(BIN)/python bench/growing_log.py

bench-converge: images
	@$(BIN)/python bench/converge.py

demo: venv collections docker
	@testbed/bin/build-images 11 12
	@testbed/bin/build-broker-image
	@testbed/bin/demo up

demo-job: venv collections
	@testbed/bin/demo job

demo-status: venv collections
	@testbed/bin/demo status

demo-down: venv
	@testbed/bin/demo down

clean: demo-down
	rm -rf $(VENV) .cache .collections
