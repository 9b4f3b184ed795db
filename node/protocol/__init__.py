"""The protocol's vocabulary, shared by every layer: enums (values as the contracts define them),
the exception tree, the task payload schema and the vector codec. A leaf: it imports nothing else
of the project."""
