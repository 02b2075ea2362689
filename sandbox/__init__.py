"""Sandbox migration runs: rehearse a customer's historical HR data against the
sandbox bureaus before anything goes live.

``sources`` streams the data file (CSV, XLSX, JSON Lines) and ``mapping`` turns its
columns into ``records`` (level 1); ``validation`` checks the data logic (level 2);
``sampling`` picks the rows a person reviews and signs off (level 3). ``runner``
takes a run through validation and ``replay`` (the submissions each row implies,
sent through the gateway's own services and adapters), in batches with a checkpoint
after each, resumably; ``store`` keeps runs, outcomes and findings in the gateway's
database; ``summary`` builds the report that ``report`` renders. ``cli`` (``hr-gateway
sandbox``) and ``api`` (``/v1/sandbox/migrations``) reach the gateway through
``extension`` (entry point ``hr_gateway.extensions``): the gateway never imports this
package.
"""
