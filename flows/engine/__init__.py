"""The flow engine: flow files (spec, loader, rules), steps, the runner, the why-log and the playbook.

Public face: ``flow_files.load_flows``, ``playbook.load_library`` / ``Library``, ``runner.run_due_flows``, ``runner.enter_deep_link``, ``flow_why``.
"""
