"""Reading stored runs: ``results`` (runs as rows), ``table``, ``plots``, ``findings`` (the paper's
claims as questions), ``verdicts`` (tests, intervals, power), ``design`` (seeds a finding needs),
``report`` (tables + figures of a results folder), ``latex``."""
