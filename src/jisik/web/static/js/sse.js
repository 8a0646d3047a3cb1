// Server-sent events from a fetch() response body (EventSource cannot POST a JSON body or send
// the API key header). Yields {type, id, data} with data parsed as JSON; comment lines (": ping")
// are skipped.

/** Parse one event block (the lines between blank lines); null for a comment-only block. */
export function parseEventBlock(block) {
  let type = "message";
  let id = null;
  const data = [];
  for (const raw of block.split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  if (!data.length) return null;
  return { type, id, data: JSON.parse(data.join("\n")) };
}

/** Async iterator over the events of a text/event-stream response body. */
export async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = parseEventBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event) yield event;
      }
    }
    const last = buffer.trim() ? parseEventBlock(buffer) : null;
    if (last) yield last;
  } finally {
    reader.releaseLock();
  }
}
