"""Infrastructure under the loop: today the shared result cache; store, lock, executors next."""
