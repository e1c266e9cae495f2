print("droplora: not built yet")
