// A proxy between a page and plume that passes plain HTTP and refuses
// every WebSocket upgrade (HTTP 403), as some corporate proxies do: the
// network condition phoenix.js's long-poll fallback is for.

import http from "node:http";

/**
 * Starts the proxy in front of `target` (`http://host:port`) for the test
 * `t`; resolves with `{url, refused}`: where pages reach plume through it,
 * and the paths of the upgrades it refused so far.
 */
export async function startProxyWithoutWebSocket(t, target) {
  const upstream = new URL(target);
  const refused = [];
  const proxy = http.createServer((request, response) => {
    const forward = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: request.method,
        path: request.url,
        headers: request.headers,
      },
      (answer) => {
        response.writeHead(answer.statusCode, answer.headers);
        answer.pipe(response);
      },
    );
    // A page that goes away takes its pending poll with it.
    response.on("close", () => forward.destroy());
    forward.on("error", (error) => {
      if (response.headersSent || response.destroyed) {
        return;
      }
      response.writeHead(502, { "content-type": "text/plain" });
      response.end(`the proxy cannot reach plume: ${error.message}\n`);
    });
    request.pipe(forward);
  });
  proxy.on("upgrade", (request, socket) => {
    refused.push(request.url);
    socket.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  });
  await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  t.after(
    () =>
      new Promise((resolve) => {
        proxy.closeAllConnections();
        proxy.close(resolve);
      }),
  );
  return { url: `http://127.0.0.1:${proxy.address().port}`, refused };
}
