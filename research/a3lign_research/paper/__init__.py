"""The paper's experiments (Tables 2, 3, 6, Figures 3, 4, and the fidelity checks), each one command.

Every experiment is a list of jobs, one per (variant, training seed), run in this process's
package on the Dask cluster of `scale` (runs.py). A job trains in memory on the
pipeline's feature cache and returns val and test reports; only val is ever the reason
for a choice (fidelity.py), test is reported beside it. `python -m a3lign_research paper`
runs them all and writes reports/paper/ (report.py).
"""
