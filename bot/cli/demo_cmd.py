"""``autocircle demo``: the whole product on the local sandbox, with a report at the end."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.markup import escape
from rich.panel import Panel

from bot.cli.common import console


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for the demo database and files."),
    owners_per_partner: int = typer.Option(6, help="Simulated owners per partner."),
    seed: int = typer.Option(7, help="Random seed: the same seed gives the same story."),
    days: int = typer.Option(60, help="Simulated days after onboarding (0: onboarding only)."),
) -> None:
    """Start the sandbox and the bot, import the sample, and let partners and owners use it."""
    from bot.cli.report_cmd import _table
    from demo.scenario import DemoOptions, run_demo

    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("aiogram").setLevel(logging.WARNING)
    result = run_demo(
        DemoOptions(
            owners_per_partner=owners_per_partner,
            seed=seed,
            out_dir=out,
            days=days,
            say=lambda text: console.print(f"[bold cyan]▶[/] {text}", highlight=False),
        )
    )
    console.print(
        f"\n{len(result.partners_import.codes)} partners registered, {result.circles} circles bound, "
        f"{result.verified} owners verified and onboarded, {result.failed} failed verification "
        "(their partners were told)."
    )
    for title, lines in result.transcript:
        body = escape("\n".join(lines)) or "(empty)"
        console.print(Panel(body, title=escape(title), expand=False), highlight=False)
    if result.days is not None:
        d = result.days
        referral_text = ", ".join(f"{k} {v}" for k, v in sorted(d.referrals.items())) or "none"
        reasons = ", ".join(f"{k} {v}" for k, v in d.winback_answers.most_common()) or "none"
        leaders = ", ".join(f"{name} {n}" for name, n in d.leaderboard) or "none yet"
        console.print(
            Panel(
                f"flow messages sent: {d.flow_messages}\n"
                f"gifts granted: {d.gifts_granted}, redeemed: {d.gifts_redeemed}\n"
                f"referrals: {referral_text}\nreferral leaderboard: {leaders}\n"
                f"churn reasons (win-back survey): {reasons}\nwon back: {d.won_back}",
                title=f"{d.days} days of operations",
                expand=False,
            ),
            highlight=False,
        )
        if d.service:
            console.print(
                Panel(escape("\n".join(d.service)), title="a service moment (day 5)", expand=False), highlight=False
            )
        if d.campaigns:
            console.print(
                Panel(escape("\n".join(d.campaigns)), title="campaigns (day 7)", expand=False), highlight=False
            )
    if result.matrix_text:
        console.print(f"segment matrix: {result.matrix_text}", highlight=False)
    if result.funnel is not None:
        console.print(_table(result.funnel))
    for path in result.files:
        console.print(f"wrote {path}")
    console.print(f"demo database: {out / 'autocircle-demo.db'}  (inspect with AUTOCIRCLE_DATABASE_URL)")
    if result.console_command:  # last: the demo's own link is spent and its server has stopped
        console.print(
            "\n[bold green]▶ 打开控制台 / open the web console on the demo's database "
            "(prints a fresh one-time sign-in link, then serves it):[/]",
            highlight=False,
        )
        console.print(f"  {escape(result.console_command)}", highlight=False, soft_wrap=True)
