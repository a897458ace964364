"""The backend contract suite: one class of tests per contract, one subclass per target backend."""
