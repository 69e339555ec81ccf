"""The building blocks of Tailor's self-contained HTML pages (the daily report and
`/dashboard`, an experiment's analysis): number formats, table cells that carry their exact
value, inline SVG plots and pages written atomically. Imports no other Tailor package, so
every package that writes a page can use it."""
