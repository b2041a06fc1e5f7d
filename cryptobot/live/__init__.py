"""Paper trading and replay (`python -m cryptobot.live`): the backtest's kernels one closed bar at a time.

`cryptobot.live.engine` steps one bar through the shared pipeline and execution kernel, `cryptobot.live.state`
keeps the crash-only SQLite state, `cryptobot.live.loop` is the bar loop (start = recovery) with its lock and
logging, `cryptobot.live.__main__` the operator commands. Runtime only: no research packages are imported.
"""
