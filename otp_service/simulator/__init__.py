"""A Telnyx Messaging API simulator: sends, signed webhooks and scripted failures, in memory."""

from otp_service.simulator.app import SimulatorConfig, create_simulator_app, run_simulator

__all__ = ["SimulatorConfig", "create_simulator_app", "run_simulator"]
