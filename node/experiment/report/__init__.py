"""The report of `chorus bench`: figures from unit records (`metrics`), results.json and markdown
(`render`), PNG plots (`plots`)."""
