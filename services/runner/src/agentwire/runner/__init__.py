"""runner: scripted agent stubs that play a task's agents and emit raw events."""
