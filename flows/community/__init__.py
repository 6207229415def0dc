"""Who is who and how people come online: partners and their codes, circles, invite links, onboarding and verification, handover, the funnel, roles, the owner views.

Public face: ``partners.create_partner`` / ``redeem_registration_code`` / ``deactivate_partner``, ``invites.issue_invites``, ``onboarding.start`` / ``verify_by_phone`` / ``verify_by_vin_suffix``, ``handover.handover``, ``roles.resolve_identity``, ``funnel``.
"""
