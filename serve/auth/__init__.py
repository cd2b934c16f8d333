"""Identity and access: accounts, passwords, tokens, roles, machine clients and the audit log."""
