"""histolab: an example dtpoc analytics module, a histopathology lab simulation.

Specimens arrive, are booked in, cut up, processed overnight in tissue
processors, embedded, cut into sections, stained, scanned and reported by
pathologists. The lab is described by an ``.xlsx`` workbook
(:mod:`histolab.workbook`); one run (a replica) writes its KPIs as JSON
(:mod:`histolab.kpis`). ``python -m histolab --help`` tells how to run it.
"""
