# The two commands of the README: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)

.PHONY: venv native demo test clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# The native reader ops (yt8m_kit/native): a no-op when built for this source and TensorFlow. Without a
# C++ compiler the readers fall back to tf's parser (same batches, slower), so a failure only warns.
native: $(STAMP)
	@$(VENV)/bin/python -m yt8m_kit.native >/dev/null 2>.native.log || { cat .native.log; \
	  echo "warning: native reader not built (see above); frame-level reading will use tf's parser"; }; rm -f .native.log

demo: native
	$(VENV)/bin/python -m yt8m_kit.demo --out demo_out

test: native
	$(VENV)/bin/python -m pytest -q tests

clean:
	rm -rf demo_out submission .pytest_cache
