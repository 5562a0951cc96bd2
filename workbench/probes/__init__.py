"""One module per layer; each reads its layer and returns a frozen dataclass with sizes in integer bytes."""
