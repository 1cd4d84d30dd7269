from orchestrator_graph.cli import main

main()
