from . import write_samples

for path in write_samples():
    print("wrote", path)
