"""Data protection: the policy, detection, redaction at the persistence choke points,
classification checks and the compliance report."""
