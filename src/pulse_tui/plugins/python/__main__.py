from pulse_tui.plugins.python.plugin import plugin

plugin.run()
