"""trackprint: shared contracts, configuration, bus topology and command line.

The services (``watcher``, ``analyzer``, ``persister``) import from here; this
package imports none of them except lazily from the command line.
"""

__version__ = "0.1.0"
