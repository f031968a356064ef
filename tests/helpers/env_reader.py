"""Read a worker host's .env with the parser its own worker uses, in the
worker's own virtualenv: worker_src's saltant/envfile.py (Python 2.7 or 3)
or, for upstream saltant's code, django-dotenv. Prints the values as JSON."""

from __future__ import annotations

import json

# Runs on the host, under Python 2.7 or 3: no f-strings, no annotations.
READER = r"""
import io, json, os, sys
src = sys.argv[1]
path = os.path.join(src, '.env')
envfile = os.path.join(src, 'saltant', 'envfile.py')
if os.path.exists(envfile):
    sys.path.insert(0, src)
    try:
        import importlib.util
        spec = importlib.util.spec_from_file_location('envfile', envfile)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except ImportError:
        import imp
        module = imp.load_source('envfile', envfile)
    values, parser = module.read_env_file(path), 'worker_src'
else:
    import dotenv
    with io.open(path, encoding='utf-8') as handle:
        text = handle.read()
    if sys.version_info[0] == 2:
        text = text.encode('utf-8')
    values = dotenv.parse_dotenv(text)
    if sys.version_info[0] == 2:
        values = dict((k.decode('utf-8'), v.decode('utf-8')) for k, v in values.items())
    parser = 'django-dotenv'
print(json.dumps({'parser': parser, 'python': sys.version.split()[0], 'values': dict(values)}))
"""


def read_env(fleet, host: str, install_dir: str = "/opt/saltant-worker") -> dict:
    """{'parser': ..., 'python': ..., 'values': {...}} as the host's worker reads its .env."""
    script = "/tmp/testbed-read-env.py"
    fleet.sh(host, f"cat > {script} <<'TESTBED_EOF'\n{READER}\nTESTBED_EOF")
    return json.loads(fleet.sh(host, f"{install_dir}/venv/bin/python {script} {install_dir}/src"))
