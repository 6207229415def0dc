"""Everything between deciding to send and the sender: outbox planning, delivery rules (quiet hours, caps), the delivery report and the app clock.

Public face: ``outbox.enqueue`` / ``Push`` / ``job_scope``, ``delivery_rules.DeliveryPolicy``, ``delivery_report``, ``clock``.
"""
