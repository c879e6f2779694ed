import { render } from 'preact';
import { locale } from './core';
import { App } from './app';
import './styles.css';

document.documentElement.lang = locale.get();
render(<App />, document.getElementById('app')!);
