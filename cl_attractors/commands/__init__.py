"""The commands that drive the layers below: ``experiment`` (run a grid, then report), ``report``
(re-render from saved runs) and ``merge`` (runs made on another machine). They sit above both
``grid/`` (specs and runners of fit processes) and ``report/`` (reads saved runs)."""
