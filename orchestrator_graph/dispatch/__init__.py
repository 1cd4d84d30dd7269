"""The dispatcher: a pure task board (``board``), pure policies that read it and return
decisions (``policies``), and the async runner that alone owns concurrency (``runner``)."""
