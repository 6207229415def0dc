"""What moves owners up the matrix: gifts and gift types, referrals, partner campaigns, win-back, circle posts.

Public face: ``gifts.grant`` / ``redeem``, ``referrals``, ``campaigns``, ``winback.on_answer`` / ``churn_reasons``, ``circle_posts``.
"""
