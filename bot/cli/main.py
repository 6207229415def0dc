"""Root of the ``autocircle`` command: registers each sub-app from its own module."""

from __future__ import annotations

import logging

import typer

from bot.cli import config_cmd, db_cmd

app = typer.Typer(
    name="autocircle",
    help="AutoCircle: car-owner communities on Telegram.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(db_cmd.app, name="db")


def _register_optional() -> None:
    """Sub-apps that live in their own modules; each module owns its command group."""
    from bot.cli import (
        audit_cmd,
        export_cmd,
        flows_cmd,
        import_cmd,
        invites_cmd,
        partners_cmd,
        report_cmd,
        run_cmd,
        segments_cmd,
        templates_cmd,
        winback_cmd,
    )

    run_cmd.register(app)
    from bot.cli import web_cmd

    app.command("web")(web_cmd.web)

    app.add_typer(import_cmd.app, name="import")
    app.add_typer(partners_cmd.app, name="partners")
    app.add_typer(report_cmd.app, name="report")
    report_cmd.app.command("churn-reasons")(winback_cmd.churn_reasons)
    report_cmd.app.command("operations")(winback_cmd.operations)
    app.add_typer(invites_cmd.app, name="invites")
    app.add_typer(flows_cmd.app, name="flows")
    app.add_typer(flows_cmd.playbook_app, name="playbook")
    app.add_typer(templates_cmd.app, name="templates")
    app.add_typer(segments_cmd.app, name="segments")
    app.add_typer(export_cmd.app, name="export")
    app.command("audit")(audit_cmd.audit)
    from bot.cli import opportunities_cmd  # issue 14: demand, tasks, capacity, report opportunities

    opportunities_cmd.register(app, report_cmd.app)
    from bot.cli import merchants_cmd  # issue 13: merchants, offers, import merchants, report settlement

    app.add_typer(merchants_cmd.app, name="merchants")
    app.add_typer(merchants_cmd.offers_app, name="offers")
    import_cmd.app.command("merchants")(merchants_cmd.import_merchants)
    import_cmd.app.command("offers")(merchants_cmd.import_offers)
    report_cmd.app.command("settlement")(merchants_cmd.settlement)
    report_cmd.app.command("offers")(merchants_cmd.offers_report)


_register_optional()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
