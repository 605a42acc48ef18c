"""Benchmarks behind ``bodisc bench ...``; each module imports its heavy dependencies lazily."""
