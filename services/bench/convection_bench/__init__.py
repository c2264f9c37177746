"""convection-bench: `convection bench`, its harness, and the hand-written floor it compares to.

`system` describes what is benchmarked (`System`, `floor_system`, `convection_system`),
`harness` runs and measures it, `report` shows the figures, `floor` is the hand-written
baseline, and `stats` is the file format in which processes report their own counters.
"""
