// The mesh suite with every service in L7 (a path rule on each): requests are carried one by
// one, and the server's sidecar states the caller to the app.
process.env.CAUSEWAY_MESH_MODE = 'L7';
await import('./mesh.test.ts');
