"""Bundled plugins, each runnable as `python -m pulse_tui.plugins.<name> --port N`.

demo      demo.echo, demo.sleep (progress), demo.flaky, demo.crash, plus data.import and
          data.batch-import so examples/demo.toml shows an exact and a near conflict
python    python.script (code in the payload) and python.<name> per saved script
importer  data.import, data.export, data.batch_import
"""
