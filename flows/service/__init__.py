"""After-sales moments: the maintenance due rule (``due``), the service plan, booking slots, bookings and telematics intake.

Public face: ``due``, ``service_plan``, ``slots``, ``bookings.scan_due`` and the booking answers, ``telematics``.
"""
