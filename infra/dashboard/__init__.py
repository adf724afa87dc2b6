"""The web dashboard of a running paper or live run: one page and ``/api/state`` on 127.0.0.1, with a token.

``server.DashboardServer`` serves (its own thread and event loop, so a busy run loop never holds a page up);
``state.poll_state`` builds the state in the driver from read-only questions to the actors that are not on the
trading path (portfolio, risk, alerts, the MetricsActor's families) and hands it to the server.
"""
