"""`shopfloor worker`: an AgentFactory-protocol worker daemon that runs CLI agents (Claude
Code, Codex, or any command) in a git worktree per session. It talks to the server only
over the public HTTP protocol (shopfloor.client), like any other worker."""
