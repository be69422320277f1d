// Server-Sent Events from a POST response (EventSource only does GET): yields {event, data} as each
// event's blank line arrives. Lines may end in \r\n (sse-starlette's default), \n or \r.

function parseBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // comments carry the keep-alive pings
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") event = value;
    else if (name === "data") data.push(value);
  }
  return data.length ? { event, data: data.join("\n") } : null;
}

export async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let carry = ""; // a trailing \r whose \n may come in the next piece
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      let piece = carry + value;
      carry = piece.endsWith("\r") ? "\r" : "";
      if (carry) piece = piece.slice(0, -1);
      buffer += piece.replace(/\r\n?/g, "\n");
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const parsed = parseBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (parsed) yield parsed;
        end = buffer.indexOf("\n\n");
      }
    }
    const last = parseBlock((buffer + carry).replace(/\r\n?/g, "\n"));
    if (last) yield last;
  } finally {
    reader.cancel().catch(() => {}); // a consumer that stops early closes the connection
  }
}
