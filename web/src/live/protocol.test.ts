import { describe, expect, it } from "vitest";
import { splitStream, streamName } from "./protocol";

describe("stream names", () => {
  it("name daily forecasts as before intervals, and the others with their interval", () => {
    expect(streamName("trades", "okx:BTC-USDT")).toBe("trades:okx:BTC-USDT");
    expect(streamName("predictions", "alpaca:IBM")).toBe("predictions:alpaca:IBM");
    expect(streamName("insights", "okx:BTC-USDT", "1m")).toBe("insights:1m:okx:BTC-USDT");
    // The feeds' channels carry every interval in one stream.
    expect(streamName("bars", "okx:BTC-USDT", "1m")).toBe("bars:okx:BTC-USDT");
  });

  it("split back into what they name, refusing what no stream is called", () => {
    expect(splitStream("trades:okx:BTC-USDT")).toEqual({ channel: "trades", instrument: "okx:BTC-USDT", interval: "1d" });
    expect(splitStream("predictions:1m:okx:BTC-USDT")).toEqual({ channel: "predictions", instrument: "okx:BTC-USDT", interval: "1m" });
    for (const name of ["alerts", "trades:1m:okx:BTC-USDT", "predictions:1d:alpaca:IBM", "predictions:2m:okx:BTC-USDT", "news:okx:BTC-USDT"]) {
      expect(splitStream(name)).toBeNull();
    }
  });
});
