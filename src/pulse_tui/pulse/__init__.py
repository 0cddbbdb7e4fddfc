"""The Pulse server: queue engine, plugin host and gRPC services.

Module map:
  jobs.py        job model, statuses and the transition table
  handlers.py    the Handler interface, JobContext, built-in diagnostic handlers
  events.py      event bus: one event per state change, coalescing per watcher
  store/         Store interface and backends (sqlite, postgres)
  engine.py      dispatcher, retries, timeouts, cancellation, recovery, retention
  registry.py    handler routing across plugins, conflicts, pins
  host.py        plugin processes: launch, handshake, health, restart, reload
  proxy.py       PluginProxyHandler: runs a job through a plugin's ExecuteJob
  services.py    gRPC QueueService + OperatorService
  schedules.py   schedules: cadence (interval / cron in a time zone), the ticker, reconcile
  schedule_service.py  gRPC ScheduleService (QNTX) + OperatorService's schedule RPCs
  auth.py        tokens
  server.py      wires it all together (`pulse-tui serve`)
"""
