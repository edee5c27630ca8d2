// The graphql-transport-ws client for the console (graphql-ws).
export { createClient } from 'graphql-ws';
