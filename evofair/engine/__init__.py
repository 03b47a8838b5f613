"""The engine: the memetic loop (`loop`), offspring plans (`plans`) and the pymoo/DEAP backends."""
