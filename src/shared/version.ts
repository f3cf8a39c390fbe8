// Kept in step with package.json by a unit test; a plain constant so workflow code could read it too.
export const LIFEBOAT_VERSION = '0.1.0';
