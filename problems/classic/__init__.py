"""Classic test problems: ZDT/DTLZ (pymoo's definitions) and a toy MLP problem."""
