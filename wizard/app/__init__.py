"""The Textual app: guided setup from detection to results. Imported only when used."""
