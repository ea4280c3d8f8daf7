"""`flask --app app seed | compare | log-summary` (cli.py): the synthetic data set (synthetic.py) loaded
into both backends, both lookup routes compared on it (probes.py: what is asked; side_by_side.py: parity,
then timed requests; latency.py: their statistics; report.py: tables, chart, files), and the same
comparison read back from a gunicorn log (timing_lines.py)."""
