"""The simulated vLLM v1 engine (DESIGN §1, §3, §4): one workload under one policy, iteration by
iteration, timed by latency eq. 1; the policy is the same object the vLLM plugin uses.

Whole runs: ``simulate(apps, policy, config)`` or ``Simulator(apps, policy, config).run()`` return a
:class:`~justitia.sim.result.RunResult`; ``make_simulation_policy(name, config)`` builds a policy for the
engine (:mod:`justitia.sim.engine`).

Incremental runs, for a tier that drives several engines on one clock::

    sim = Simulator([], policy, config, listener=obs)
    sim.run_until(t)          # advance the engine to time t
    sim.add_app(spec)         # an application arriving at spec.arrival_s >= sim.time_s
    ...
    sim.run_until(math.inf)   # drain
    result = sim.finish()     # RunResult; RuntimeError if an added app is not done

* ``run_until(t)`` processes arrivals and stage releases as the engine reaches them and runs every
  iteration that *starts* before ``t``: the engine stops at the first iteration boundary at or after
  ``t`` (``sim.now``, the end of its last iteration, may lie past ``t`` by the iteration in flight; an
  idle engine's clock moves to ``t``). ``sim.time_s`` becomes ``t``.
* ``add_app(spec)``: ``spec.arrival_s`` must be ``>= sim.time_s`` (else ``ValueError``); an app
  arriving before ``sim.now`` is queued at the end of the iteration in flight, exactly as a whole run
  queues an arrival that falls inside an iteration. Adding each app right after ``run_until(its
  arrival)`` therefore gives the same result as ``run()`` on the same apps.
* ``next_event_s``: ``sim.now`` while requests wait or run, else the next arrival or delayed stage
  release, ``math.inf`` if none; ``idle``: nothing waiting, running or pending.
* ``listener``: any object; its optional methods ``call_finished(app_id, stage, call_index,
  prompt_tokens, output_tokens, now)`` and ``app_finished(app_id, now)`` are called as each call and
  each application completes (once each, in completion order), with the engine's time ``now``. A
  listener may call ``add_app`` for an application arriving at or after that ``now``.

A ``run_until`` at a time that is no event may split a multi-iteration decode advance in two; the
result then equals an unsplit run's up to float rounding.
"""
