// Time is passed in, never read from the global clock inside domain code, so validity
// edges can be tested by stepping a clock.
export type Clock = () => Date;
export const systemClock: Clock = () => new Date();
