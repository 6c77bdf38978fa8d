"""The YAML edge: the model contract and the suite, typed and frozen; inputs named on the command line."""
