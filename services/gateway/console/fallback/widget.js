/* Helmdesk: the chat widget was not built into this server. Run `make console && make build`. */
console.warn('Helmdesk: the chat widget is not built on this server (run `make console`, then rebuild helmdesk).');
